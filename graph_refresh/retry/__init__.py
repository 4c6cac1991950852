"""Retry state, in one home (docs/learning.md): why Jobs failed (``failures``), what an item does next
(``policy``), the ledger that remembers it (``model``, ``codec``) and where that is kept (``store``)."""
