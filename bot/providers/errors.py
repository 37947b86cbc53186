"""What can go wrong at a backend, as errors whose message a member or admin can read.

Every :class:`ProviderError` is a :class:`~bot.errors.UserError`: the bot's one error
handler shows its message as is, and chat shows it in the channel. Messages are written by
tunecord (the backend's own words are quoted only where they help, shortened and scrubbed
of the API key) and never contain a key, a URL with credentials or a traceback.

``retryable`` says whether trying the same call later may succeed (busy, unreachable);
``outcome_unknown`` marks a request that may have taken effect although no answer came
(a job creation that timed out): reconcile before repeating it.
"""

from __future__ import annotations

from bot.errors import UserError

TRAINING_ALTERNATIVES = (
    "To keep fine-tuning, run the bundled trainer (TUNECORD_BACKEND=trainer) "
    "or point OPENAI_BASE_URL at another OpenAI-compatible server that trains."
)


def sentence(text: str) -> str:
    """``text`` starting with a capital: a backend's label ("the model server at ...") may
    begin a message."""
    return text[:1].upper() + text[1:]


class ProviderError(UserError):
    """A backend call failed; ``str(error)`` is safe to show."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(sentence(message))
        self.status = status
        self.code = code
        self.outcome_unknown = outcome_unknown


class TrainingNotAvailable(ProviderError):
    """The backend refuses to fine-tune (OpenAI's 403 ``training_not_available``, a server
    without a fine-tuning API, or any other refusal to create a job)."""


class RateLimited(ProviderError):
    """429: the backend is busy or a quota is used up; ``retry_after`` in seconds if known."""

    retryable = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, status=429, code=code)
        self.retry_after = retry_after


Busy = RateLimited


class Unavailable(ProviderError):
    """The backend did not answer usefully: a 5xx, a timeout or a broken connection."""

    retryable = True


class AuthenticationFailed(ProviderError):
    """401: the backend refused the bot's API key (an operator's fix, not a member's)."""


class NotFound(ProviderError):
    """404: no such job, file or model at this backend."""


class ModelNotFound(NotFound):
    """The model does not exist here, was deleted, or has been shut down."""

    def __init__(self, message: str, *, model: str | None = None, code: str | None = None) -> None:
        super().__init__(message, status=404, code=code)
        self.model = model


class ContextTooLong(ProviderError):
    """400 ``context_length_exceeded``: the conversation does not fit the model."""


class BadRequest(ProviderError):
    """Any other refusal of the request; ``backend_message`` is the backend's (scrubbed) words."""

    def __init__(
        self,
        message: str,
        *,
        backend_message: str = "",
        status: int | None = 400,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.backend_message = backend_message
