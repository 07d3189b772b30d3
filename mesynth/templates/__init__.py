"""AU templates: types, expert tables (YAML under ``data/``), mining, macro onsets, the bank."""

from mesynth.templates.bank import TemplateBank
from mesynth.templates.types import Template, TemplateAU, TemplateError, TemplateInstance

__all__ = ["Template", "TemplateAU", "TemplateBank", "TemplateError", "TemplateInstance"]
