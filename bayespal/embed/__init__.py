"""Foundation-model embeddings: text through any ``transformers`` model, images through
CLIP's image tower; both pool a chosen hidden layer, batch, and cache on disk."""

from bayespal.embed.cache import EmbeddingCache
from bayespal.embed.image import ImageEmbedder
from bayespal.embed.text import POOLINGS, TextEmbedder, pool

__all__ = ["POOLINGS", "EmbeddingCache", "ImageEmbedder", "TextEmbedder", "pool"]
