"""Sphinx configuration of the gdcore documentation (build: see docs/README.md)."""
import os
import sys

import gdcore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

project = "gdcore"
copyright = "2026, the gdcore developers"
release = version = gdcore.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

# numpydoc renders the API reference from the docstrings; members are listed by
# autosummary, not by numpydoc's own class-member tables (they would duplicate them).
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"          # the numpydoc Parameters sections say the types
suppress_warnings = ["autosummary.import_cycle"]

# Every example runs once per build and must finish in seconds: the CI build
# executes them all (``-W`` turns any warning or failure into an error).
sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    # gdcore.plot draws on its own Figures (no pyplot state): docs/gdcore_scraper.py
    # hands them to sphinx-gallery's matplotlib scraper
    "image_scrapers": ("gdcore_scraper",),
    "reset_modules": ("matplotlib",),
}

html_theme = "alabaster"
html_static_path = []
exclude_patterns = ["_build"]
nitpicky = False


def _skip_sklearn_request_methods(app, what, name, obj, skip, options):
    # scikit-learn adds set_{fit,partial_fit,score}_request to every estimator class;
    # their docstrings point into scikit-learn's own documentation (its glossary and
    # labels), which this site does not have.  They are scikit-learn's API, not gdcore's.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_request_methods)
