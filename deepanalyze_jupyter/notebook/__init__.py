"""The notebook front end: magics, widget forms and output redaction.

The only part of the package that imports IPython, ipywidgets or ``tqdm.auto``.
"""
