"""attnviz: see what the attention modules of a CNN compute. Run: streamlit run app.py"""
import streamlit as st

from attnviz.app import begin_run, sidebar, write_link

st.set_page_config(page_title="attnviz: attention in CNNs", layout="wide")

PAGES = {
    "Start": [st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
              st.Page("pages/lecture.py", title="Lecture · 讲义", icon=":material/school:")],
    "Channel attention": [
        st.Page("pages/eca.py", title="ECA channel weights", icon=":material/tune:"),
        st.Page("pages/eca_kernel.py", title="ECA kernel size k(C)", icon=":material/straighten:"),
        st.Page("pages/flexible.py", title="Flexible / SE attention", icon=":material/call_split:"),
    ],
    "DANet": [
        st.Page("pages/position.py", title="Position attention (S)", icon=":material/ads_click:"),
        st.Page("pages/channel_map.py", title="Channel attention (X)", icon=":material/grid_on:"),
        st.Page("pages/attribution.py", title="Attention vs attribution", icon=":material/troubleshoot:"),
    ],
    "Compare": [st.Page("pages/compare.py", title="Compare modules", icon=":material/compare:")],
}

begin_run()
page = st.navigation(PAGES)
sidebar()
page.run()
write_link()  # once per run, after the page has said its parameters (a guard that stops the page writes it)
