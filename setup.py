"""Shim for tools that still call setup.py; the one dependency list is in pyproject.toml."""

from setuptools import setup

setup()
