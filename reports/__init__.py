"""Reports: figures, CSV tables and an HTML page placing searched networks beside EfficientViT B0-B3, SegFormer and SegNeXt.

``report.write_report`` assembles the page from one module per section, in this order:
``search`` (the user's search and front), ``validation`` (brief training), ``predictor``
(the latency table's accuracy), ``comparison`` (SegFormer and SegNeXt measured here),
``fidelity`` (int8 tables), then the paper's reproduction: ``published``, ``speed_claims``,
``breakdown``, ``backbones`` and ``features``. ``measured`` times every network once for all
of them; ``page`` and ``plots`` hold what the sections share.
"""
