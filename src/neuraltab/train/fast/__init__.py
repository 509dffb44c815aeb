"""Hand-derived CPU training steps: the default model's and the plain MLP's gradients without an autograd graph,
and Adam/AdamW over one flat buffer (:class:`~.flat_adam.FlatAdam`)."""
