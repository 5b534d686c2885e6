"""qeu_vlm: fine-tune and measure VLMs that inspect a 27-pin connector."""
from .answer import Answer, answer_for, format_answer, format_star_answer, parse_answer
from .domain import Address, DomainError
from .metrics import score

__all__ = ["Answer", "Address", "DomainError", "answer_for", "format_answer", "format_star_answer",
           "parse_answer", "score"]
