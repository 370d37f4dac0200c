"""
Seven optimizers on Rosenbrock's function
=========================================

The ``optimizers`` section of the tour (``gdcore demo --section optimizers``): it prints what it
shows and with which settings, then the section's pictures are drawn.  The code behind
it is in :mod:`gdcore.tour`; the pictures are made by :mod:`gdcore.plot`.
"""
import gdcore as gd
from gdcore import tour

results = tour.run(["optimizers"])
figures = [draw() for draw in gd.plot.tour_pictures(results).values()]
