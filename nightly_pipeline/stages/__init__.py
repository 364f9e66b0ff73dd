"""Enrichment logic of the crawl stage: website discovery, the Tavily fallback and AI extraction."""
