"""Templating: workspace templates rendered in Jinja's sandbox into complete messages."""

from engine.templating.builder import MessageBuilder, SendRequest
from engine.templating.catalog import (
    BASE_VARIANT,
    TEMPLATES_DIR,
    TemplateCatalog,
    TemplateSource,
    read_catalog,
)
from engine.templating.checking import template_problems
from engine.templating.compiler import MessageFormat
from engine.templating.compose import MessageIdentity, ThreadParent, compose_message
from engine.templating.context import AttributeTypes, Recipient
from engine.templating.render import (
    RenderedMessage,
    TemplateRenderer,
    TemplateRenderError,
    TrackedLink,
)

__all__ = [
    # files
    "BASE_VARIANT",
    "TEMPLATES_DIR",
    "TemplateCatalog",
    "TemplateSource",
    "read_catalog",
    "template_problems",
    # rendering
    "AttributeTypes",
    "MessageFormat",
    "Recipient",
    "RenderedMessage",
    "TemplateRenderError",
    "TemplateRenderer",
    "TrackedLink",
    # messages
    "MessageBuilder",
    "MessageIdentity",
    "SendRequest",
    "ThreadParent",
    "compose_message",
]
