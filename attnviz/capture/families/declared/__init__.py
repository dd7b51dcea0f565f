"""The declared attention families: one module a family, each exporting its declaration as `FAMILY` (or several,
in the order recognition tries them, as `FAMILIES`: cbam.py's two gates).

attnviz.capture.families.catalogue imports every module of this package and lists what they export: adding a
family is adding its file here.
"""
