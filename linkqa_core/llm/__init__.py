"""OpenAI-compatible endpoints, one idea a module.

``settings`` (LLMSettings and the one loader), ``client`` (concurrency, retries,
orchestration), ``chat`` (requests and results), ``modes`` (structured output that
adapts to the endpoint), ``failures`` (what an error means, one line for it), ``ratelimit``
(buckets, Retry-After, back-off), ``transport`` (keep-alive HTTP/1.1 for http://),
``ledger`` (cache keys, tokens, USD, what a run spent), ``replies`` (reading a completion;
the one lenient JSON parser), ``scrub`` (keys out of sight), ``probe`` (connection test).
"""

import logging

# a library logs; the application decides where to (no "No handlers" fallback to stderr)
logging.getLogger("linkqa_core.llm").addHandler(logging.NullHandler())
