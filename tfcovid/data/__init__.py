"""CT data: readers, importers into the HDF5 case store, the chest-CT phantom, tf.data pipelines."""
