"""SSInfNet's self-supervised pre-training with the coach (Fung et al., J Transl Med 2021; spec
section 7): the alternating schedule (``schedule``), the inpainter's inputs and targets
(``inputs``), the two optimisation steps (``steps``) and the resumable loop (``loop``,
``tfcovid pretrain``)."""
