"""Datasets on disk: the index format (``format``) and the torch Dataset (``dataset``)."""
