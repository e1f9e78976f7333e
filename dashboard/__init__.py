"""The dashboard (Streamlit; docs/dashboard.md): an entry point reading the warehouse as the
read-only analyst role. Queries live in :mod:`dashboard.queries`, layout helpers in
:mod:`dashboard.ui`, one thin script per page in ``dashboard/pages/``; ``dashboard/app.py`` is
what ``streamlit run`` starts."""
