"""Who waits comes first (docs/lanes.md): requests and their ConfigMap (``requests``, ``store``), the lanes
(``lanes``) and where an item stands (``explain``)."""
