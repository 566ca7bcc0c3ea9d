"""Option names of the layers, importable without torch (the command line lists them)."""

BASES = ("pixel", "harmonic")
BASIS_CHOICES = ("auto", *BASES)
# layouts of group feature maps (``equinas.nn.layout``); ``auto``: the faster one per device
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
