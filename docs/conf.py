"""Sphinx configuration for django-aws-api-gateway-websockets.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` from the repository root.
"""

import os
import sys

import django

# Make the package and the test settings importable for autodoc.
sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django_aws_api_gateway_websockets import __version__  # noqa: E402

project = "django-aws-api-gateway-websockets"
author = "django-aws-api-gateway-websockets contributors"
copyright = "django-aws-api-gateway-websockets contributors"
version = __version__
release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]

# No network access during the build: no inventories are fetched.
intersphinx_mapping: dict = {}

exclude_patterns = ["_build"]
root_doc = "index"
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "alabaster"
html_title = f"{project} {release}"
html_theme_options = {
    "description": "Real-time WebSockets for Django, with AWS API Gateway holding the sockets.",
    "fixed_sidebar": True,
}
