# Shared helpers for the scripts in this folder. Source it; do not run it.

headwater_cache_dir() {
    printf '%s' "${HEADWATER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/headwater}"
}

mdbook_bin() {
    printf '%s/mdbook/bin/mdbook' "$(headwater_cache_dir)"
}

tansu_bin() {
    printf '%s/tansu-0.6.0-sqlite/bin/tansu' "$(headwater_cache_dir)"
}

cargo_deny_bin() {
    printf '%s/cargo-deny/bin/cargo-deny' "$(headwater_cache_dir)"
}
