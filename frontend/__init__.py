"""vitscope dashboard: a Dash app talking to the vitscope API over HTTP only (`python -m frontend`)."""
