import pytest

from llama_platform.data.lang import LANG_CODES, UNDETERMINED, detect_language, prose_sample


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The server crashes at start when the cache directory is missing, and the log is empty.", "en"),
        ("启动时报错，缓存目录不存在，日志里没有任何信息。", "zh"),
        ("Der Server stürzt beim Start ab, wenn das Cache-Verzeichnis fehlt. Im Protokoll steht nichts.", "de"),
        ("Le serveur plante au démarrage quand le répertoire du cache est absent, et le journal est vide.", "fr"),
        ("El servidor falla al arrancar cuando falta el directorio de caché y el registro está vacío.", "es"),
        ("Сервер падает при запуске, если каталог кэша отсутствует, а журнал пуст.", "ru"),
        ("キャッシュディレクトリがないと、サーバーは起動時にクラッシュします。", "ja"),
    ],
)
def test_languages_are_tagged(text, expected):
    assert detect_language(text) == expected
    assert expected in LANG_CODES


@pytest.mark.parametrize("text", ["", None, "ok", "```\nTraceback (most recent call last):\n  File x.py\n```", "+1 !!"])
def test_too_little_prose_is_undetermined(text):
    assert detect_language(text) == UNDETERMINED


def test_code_and_urls_do_not_decide_the_language():
    code = "```python\nfor item in the_list: print(item) if this and that else None\n```\n"
    text = code * 5 + "缓存目录不存在时启动失败。 https://example.com/the/docs/and/more"
    assert "print" not in prose_sample(text) and "example.com" not in prose_sample(text)
    assert detect_language(text) == "zh"


def test_english_fast_path_agrees_with_lingua_on_non_english_ascii():
    # Unaccented Spanish/Portuguese must still go to lingua, not the English word-share shortcut.
    assert detect_language("El servidor no arranca cuando el directorio no existe y el registro no tiene nada") == "es"
