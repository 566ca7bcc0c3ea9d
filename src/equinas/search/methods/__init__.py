"""The search methods, one module each; ``equinas.search.METHODS`` names them."""
