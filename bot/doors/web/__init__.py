"""The web door: run pages, a JSON API, and a form that starts runs as door `web`."""
