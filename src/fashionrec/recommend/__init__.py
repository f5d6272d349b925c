"""`Recommender`: the one object the CLI, the REST API and the web app all use.

It holds a catalog and the model that built it, and answers "products that look like this photo"
(`by_image`) and "more like this product" (`by_id`, never returning the product itself), optionally
restricted by metadata filters. A photo of a person is answered per garment it shows (`RegionAnswer`).

`answers` (what a query answers), `query` (what it may ask), `filters`, `view` (one snapshot and its backend),
`recommender` (`Recommender`, following the catalog), `similar_all` (every product at once).
"""

from fashionrec.models.garments import KINDS as GARMENT_KINDS
from fashionrec.recommend.answers import DEFAULT_K, SIMILARITY_MEANING, Match, Recommendations, RegionAnswer
from fashionrec.recommend.filters import Filters, parse_filters
from fashionrec.recommend.recommender import Recommender, open_search
from fashionrec.recommend.similar_all import SimilarTable, similar_all

__all__ = [
           "DEFAULT_K",
           "GARMENT_KINDS",
           "SIMILARITY_MEANING",
           "Filters",
           "Match",
           "Recommendations",
           "Recommender",
           "RegionAnswer",
           "SimilarTable",
           "open_search",
           "parse_filters",
           "similar_all",
]
