#include "optiq/tokenizer/unicode.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace tk = optiq::tokenizer;

namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, FindInvalidPointsAtTheFirstBadByte) {
    EXPECT_EQ(tk::find_invalid_utf8("plain ascii"), 11u);
    EXPECT_EQ(tk::find_invalid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"), 10u);  // é and 😀 are fine
    EXPECT_EQ(tk::find_invalid_utf8("ab\x80"), 2u);                          // lone continuation byte
    EXPECT_EQ(tk::find_invalid_utf8("a\xC0\xAF"), 1u);                       // overlong '/'
    EXPECT_EQ(tk::find_invalid_utf8("\xED\xA0\x80"), 0u);                    // a UTF-16 surrogate
    EXPECT_EQ(tk::find_invalid_utf8("xy\xF4\x90\x80\x80"), 2u);              // above U+10FFFF
    EXPECT_EQ(tk::find_invalid_utf8("xyz\xE2\x82"), 3u);                     // truncated at the end
}

// One U+FFFD per maximal subpart (Unicode §3.9 "U+FFFD substitution of maximal subparts", the
// behaviour of Rust's String::from_utf8_lossy and so of HF tokenizers' decoders).
TEST(Utf8, LossyReplacesMaximalSubparts) {
    EXPECT_EQ(tk::utf8_lossy("\xE2\x82\x41"), kFFFD + "A");        // E2 82 is one truncated sequence
    EXPECT_EQ(tk::utf8_lossy("\xC0\x80"), kFFFD + kFFFD);          // C0 is never valid, 80 alone neither
    EXPECT_EQ(tk::utf8_lossy("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);  // ED A0: second byte out of range
    EXPECT_EQ(tk::utf8_lossy("\xF0\x9F\x98"), kFFFD);              // truncated 4-byte sequence at the end
    EXPECT_EQ(tk::utf8_lossy("ok \xF0\x9F\x98\x80"), "ok \xF0\x9F\x98\x80");
}

TEST(Utf8, StrictPolicyNamesTheOffsetAndReplaceRepairs) {
    try {
        (void)tk::apply_utf8_policy("abc\xFFz", tk::Utf8Policy::strict);
        FAIL() << "expected value_error";
    } catch (const optiq::value_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("offset 3"), std::string::npos) << what;
        EXPECT_NE(what.find("0xff"), std::string::npos) << what;
    }
    EXPECT_EQ(tk::apply_utf8_policy("abc\xFFz", tk::Utf8Policy::replace), "abc" + kFFFD + "z");
}

TEST(Utf8, DecodeEncodeRoundTrip) {
    const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
    const std::u32string cps = tk::decode_utf8(s);
    ASSERT_EQ(cps.size(), 4u);
    EXPECT_EQ(cps[1], 0xE9u);
    EXPECT_EQ(cps[2], 0x20ACu);
    EXPECT_EQ(cps[3], 0x1F600u);
    EXPECT_EQ(tk::encode_utf8(cps), s);
}

TEST(CharClass, LettersNumbersWhiteSpace) {
    using C = tk::CharClass;
    EXPECT_EQ(tk::char_class(U'q'), C::letter);
    EXPECT_EQ(tk::char_class(0xE9), C::letter);     // é
    EXPECT_EQ(tk::char_class(0x4E2D), C::letter);   // 中 (Lo)
    EXPECT_EQ(tk::char_class(0x02B0), C::letter);   // ʰ (Lm)
    EXPECT_EQ(tk::char_class(U'7'), C::number);
    EXPECT_EQ(tk::char_class(0x0663), C::number);   // Arabic-Indic three (Nd)
    EXPECT_EQ(tk::char_class(0x00BD), C::number);   // ½ (No)
    EXPECT_EQ(tk::char_class(0x216B), C::number);   // Ⅻ (Nl)
    EXPECT_EQ(tk::char_class(U' '), C::space);
    EXPECT_EQ(tk::char_class(0x00A0), C::space);    // no-break space
    EXPECT_EQ(tk::char_class(0x2009), C::space);    // thin space
    EXPECT_EQ(tk::char_class(0x3000), C::space);    // ideographic space
    EXPECT_EQ(tk::char_class(0x0085), C::space);    // NEL
    EXPECT_EQ(tk::char_class(0x200B), C::other);    // zero-width space is not White_Space
    EXPECT_EQ(tk::char_class(U'_'), C::other);
    EXPECT_EQ(tk::char_class(0x0301), C::other);    // combining acute (Mn)
    EXPECT_EQ(tk::char_class(0x1F600), C::other);   // 😀 (So)
    EXPECT_EQ(tk::char_class(0x10FFFF), C::other);
}

TEST(ByteUnicodeMap, IsGpt2sBijection) {
    const tk::ByteUnicodeMap m;
    EXPECT_EQ(m.to_char[' '], 0x120u);   // 'Ġ'
    EXPECT_EQ(m.to_char['\n'], 0x10Au);  // 'Ċ'
    EXPECT_EQ(m.to_char['A'], static_cast<char32_t>('A'));
    EXPECT_EQ(m.to_char[0xAD], 0x143u);  // soft hyphen, the last remapped byte
    std::set<char32_t> image(m.to_char.begin(), m.to_char.end());
    EXPECT_EQ(image.size(), 256u);
    for (unsigned b = 0; b < 256; ++b) EXPECT_EQ(m.byte_of(m.to_char[b]), static_cast<int>(b));
    std::string bytes;
    ASSERT_TRUE(m.unmap("\xC4\xA0the", bytes));  // "Ġthe"
    EXPECT_EQ(bytes, " the");
    EXPECT_FALSE(m.unmap("\xE4\xB8\xAD", bytes));  // 中 is outside the map
}

}  // namespace
