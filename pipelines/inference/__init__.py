"""Using trained GANs: load the generator of a run or checkpoint, sample, translate."""
