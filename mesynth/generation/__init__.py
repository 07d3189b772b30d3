"""Generation: balance plans, per-clip parameters, the pipeline and the clip store.

Modules: balance, pipeline, store. Import names from the modules
(or from :mod:`mesynth`); this package file imports nothing, so stages stay acyclic.
"""
