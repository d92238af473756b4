"""Package data for tfvae.data: the embedded MNIST and Frey Face files (see SOURCES.md)."""
