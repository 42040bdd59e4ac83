"""The aiohttp application: routes, upstream session, streaming, disconnects."""
