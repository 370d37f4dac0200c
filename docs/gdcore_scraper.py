"""sphinx-gallery image scraper for gdcore's pictures.

gdcore.plot draws on its own matplotlib Figures (no pyplot state).  This scraper hands
the Figures an example created to pyplot, then lets sphinx-gallery's matplotlib
scraper save them as usual.
"""


def _scraper(block, block_vars, gallery_conf):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import matplotlib_scraper

    seen = _scraper.seen
    for value in list(block_vars["example_globals"].values()):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, Figure) and id(item) not in seen:
                seen.add(id(item))
                plt.figure(item)
    return matplotlib_scraper(block, block_vars, gallery_conf)


_scraper.seen = set()


def _get_sg_image_scraper():
    return _scraper
