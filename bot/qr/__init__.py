"""Printable QR boards for the grids: the links they carry, the sheet, the files."""
