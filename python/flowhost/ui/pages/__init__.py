"""The dashboard's pages, a module per group; each adds its routes to `routes`."""
