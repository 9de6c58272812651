#include "optiq/tokenizer/chat_template.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tk = optiq::tokenizer;
using Msgs = std::vector<tk::ChatMessage>;

namespace {

// SmolLM2-135M-Instruct's tokenizer.chat_template, as stored in its GGUF (a real newline after "system").
const std::string kSmolLM2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

TEST(ChatTemplate, SmolLM2AddsTheDefaultSystemPrompt) {
    const auto t = tk::ChatTemplate::detect(kSmolLM2Template);
    ASSERT_EQ(t.format(), tk::ChatFormat::smollm2);
    EXPECT_EQ(t.default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    EXPECT_EQ(t.render({{"user", "Hi!"}}, true),
              "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
              "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(t.render({{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}}, false),
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
              "<|im_start|>assistant\n4<|im_end|>\n");
    EXPECT_EQ(t.render(Msgs{}, true), "<|im_start|>assistant\n");  // the loop never runs: no system block
}

TEST(ChatTemplate, ChatMLQwen2AndLlama3) {
    EXPECT_EQ(tk::ChatTemplate::chatml().render({{"user", "a"}, {"assistant", "b"}}, true),
              "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>assistant\n");
    const auto q = tk::ChatTemplate::qwen2();
    EXPECT_EQ(q.render({{"user", "hi"}, {"tool", "1"}, {"tool", "2"}}, false),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nhi<|im_end|>\n<|im_start|>user\n<tool_response>\n1\n</tool_response>\n"
              "<tool_response>\n2\n</tool_response><|im_end|>\n");
    EXPECT_EQ(q.render({{"system", "S"}, {"user", "u"}}, true),
              "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_THROW((void)q.render(Msgs{}, true), optiq::value_error);
    // Llama-3 trims each message (Jinja's trim) and puts BOS before the first header only.
    EXPECT_EQ(tk::ChatTemplate::llama3().render({{"system", " S \n"}, {"user", "\tu\xE3\x80\x80"}}, true),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nu<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, DetectsFormatsAndRejectsOthers) {
    // Qwen2.5 writes its default system prompt with a "\n" escape inside the Jinja string.
    const std::string qwen =
        "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- else %}{%- if messages[0]['role'] == 'system' %}"
        "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}"
        "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
        "{%- endif %}{%- endif %} ... '\\n<tool_response>\\n' ...";
    const auto q = tk::ChatTemplate::detect(qwen);
    EXPECT_EQ(q.format(), tk::ChatFormat::qwen2);
    EXPECT_EQ(q.default_system(), tk::kQwen2DefaultSystem);
    EXPECT_EQ(tk::ChatTemplate::detect("{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>'}}").format(),
              tk::ChatFormat::chatml);
    EXPECT_EQ(tk::ChatTemplate::detect("{{ '<|start_header_id|>' }}{{ '<|end_header_id|>' }}{{ '<|eot_id|>' }}").format(),
              tk::ChatFormat::llama3);
    EXPECT_THROW((void)tk::ChatTemplate::detect("{{ '[INST] ' + m['content'] + ' [/INST]' }}"), optiq::config_error);
}

}  // namespace
