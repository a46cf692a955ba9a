"""One module per dashboard page; each registers itself and rebuilds its view from the URL."""
