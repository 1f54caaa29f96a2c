"""Generator backends behind one interface (``Generator``)."""
