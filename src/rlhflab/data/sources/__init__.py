"""Adapters from the public datasets of the papers to rlhflab's records.

Each adapter reads rows in its source's own schema (from the Hugging Face hub by id, or from a
local JSON / JSONL / parquet file holding the same rows) and returns SFT, preference or prompt
records. What every record carries in `meta`:

- `source`:   the adapter's name;
- `input`:    the raw input text (post, article, instruction) — what OOD splits measure;
- `category`: subreddit, news site or source dataset, when the source has one (category splits);
- `messages`: for instruction/chat data, the conversation before the response as
              [{"role", "content"}, ...]; the data stage renders it with a chat template
              (rlhflab.data.chat) into the record's `prompt`. Summarisation prompts are plain text
              in the format of Stiennon et al. and are used as they are.

Preference sources with more than two rated responses per prompt are binarised as ivison2024 appendix B/E
do: the best response is `chosen` and a random strictly worse one `rejected` (seeded), ties skipped.

Every adapter is tested on a fixture in its source's schema (tests/fixtures/sources/).

Layout: `common` (record helpers, prompt formats, binarisation, `Adapter`), the adapter modules
`summarisation`, `instructions` and `conversations`, `registry` (ADAPTERS, the one list of sources)
and `loading` (reading rows, `load_source`, `as_prompts`).
"""

from rlhflab.data.sources.common import (KINDS, Adapter, Row, SourceError, article_prompt, binarise, instruction_text,
                                         parse_hh, tldr_prompt, user)
from rlhflab.data.sources.loading import as_prompts, hub_rows, load_source, read_rows
from rlhflab.data.sources.registry import ADAPTERS

__all__ = ["ADAPTERS", "KINDS", "Adapter", "Row", "SourceError", "article_prompt", "as_prompts", "binarise",
           "hub_rows", "instruction_text", "load_source", "parse_hh", "read_rows", "tldr_prompt", "user"]
