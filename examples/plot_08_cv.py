"""
A hyperparameter chosen by cross-validation
===========================================

The ``cv`` section of the tour (``gdcore demo --section cv``): it prints what it
shows and with which settings, then the section's pictures are drawn.  The code behind
it is in :mod:`gdcore.tour`; the pictures are made by :mod:`gdcore.plot`.
"""
import gdcore as gd
from gdcore import tour

results = tour.run(["cv"])
figures = [draw() for draw in gd.plot.tour_pictures(results).values()]
