"""attnviz: see what the attention modules of a CNN compute. Run: streamlit run app.py"""

import streamlit as st

from attnviz.app import begin_run, sidebar, write_link
from attnviz.app.language import starting_language
from attnviz.app.queueing import admitted_page_run
from attnviz.app.sidebar import show_notices
from attnviz.i18n import translate

language = starting_language()
st.set_page_config(page_title=translate("nav.tab_title", language), layout="wide")  # the browser tab, in language

with admitted_page_run():  # whole runs a few at a time, sessions already on a page first (attnviz.admission)
    begin_run()

    def title(key: str) -> str:
        return translate(f"nav.{key}", language)

    PAGES = {
        title("start"): [
            st.Page("pages/overview.py", title=title("overview"), icon=":material/home:", default=True),
            st.Page("pages/lecture.py", title=title("lecture"), icon=":material/school:"),
        ],
        title("channel"): [
            st.Page("pages/eca.py", title=title("eca"), icon=":material/tune:"),
            st.Page("pages/eca_kernel.py", title=title("eca_kernel"), icon=":material/straighten:"),
            st.Page("pages/flexible.py", title=title("flexible"), icon=":material/call_split:"),
            st.Page("pages/coord.py", title=title("coord"), icon=":material/grid_4x4:"),
        ],
        title("danet"): [
            st.Page("pages/position.py", title=title("position"), icon=":material/ads_click:"),
            st.Page("pages/channel_map.py", title=title("channel_map"), icon=":material/grid_on:"),
            st.Page("pages/attribution.py", title=title("attribution"), icon=":material/troubleshoot:"),
        ],
        title("compare"): [st.Page("pages/compare.py", title=title("compare_modules"), icon=":material/compare:")],
    }

    page = st.navigation(PAGES)
    sidebar()
    show_notices()
    page.run()
    write_link()  # once per run, after the page has said its parameters (a guard that stops the page writes it)
