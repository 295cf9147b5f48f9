"""The scheduler: a pure core (``model``, ``framework``, ``plugins``, ``preemption``)
and the process that feeds it from informers and binds pods."""
