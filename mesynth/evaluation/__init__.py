"""Evaluation of synthetic data against real data (the realism report, its features,
figures and domain test) and looking at a store (stats, previews).

Modules: calibration_comparison (+ comparison_figures), domain_test, features, figures,
preview, realism_report, stats. Import names from the modules (or from :mod:`mesynth`); this
package file imports nothing, so stages stay acyclic.
"""
