"""Stage logic the assets call, for one tenant's night (``night.TenantNight``): website discovery,
the crawl stage with the Tavily fallback and AI extraction, contacts and email verification."""
