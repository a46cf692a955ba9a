"""One module per dashboard page; each registers itself and rebuilds its view from the URL.

`frontend.app` imports every module here, so a new page is one new module; the view pages
declare themselves through `frontend.page.ViewPage`.
"""
