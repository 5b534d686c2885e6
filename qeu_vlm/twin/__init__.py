"""The synthetic twin of the connector's datasets: the schematic and rendered looks (``synth``, ``render``) and the
twin beside the real reference figures (``figure``)."""
