"""From a CT and an infection map to severity numbers (issue 6; spec section 9).

- ``lung``: right/left lung parenchyma by HU threshold and morphology, no trained weights.
- ``ratio``: infected fraction of lung per slice, lung, case and class.
- ``classes``: severity class 0/1/2 from the ratio, threshold fitting and micro-F1 scores.
- ``ctss``: CT severity score over 12 zone regions (an approximation of the 20-region score).
- ``thresholds``: the (low, high) thresholds stored with a run, else the reference ones.
- ``radiomics``: first-order, GLCM, GLDM and NGTDM features as pyradiomics defines them.
- ``phenotypes``: those features of the infected lung of a case, as CSV rows.

NumPy, SciPy and scikit-learn only; no TensorFlow, so importing is cheap.
"""
