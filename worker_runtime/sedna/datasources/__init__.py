"""Data sources: samples (``x``) and labels (``y``) given to estimators, and index parsers."""

from sedna.datasources.base import BaseDataSource
from sedna.datasources.parsers import CSVDataParse, TxtDataParse

__all__ = ["BaseDataSource", "CSVDataParse", "TxtDataParse"]
