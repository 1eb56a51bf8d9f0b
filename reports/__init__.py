"""Reports: figures, CSV tables and an HTML page placing searched networks beside EfficientViT B0-B3, SegFormer and SegNeXt."""
