"""What every file source shares: formats (bytes -> frames), globs and the listing frame."""
