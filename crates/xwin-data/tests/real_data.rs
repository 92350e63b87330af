//! The importers, templates and statistics on the real samples in `../shared/data`.

use xwin_data::*;
use xwin_testkit::shared_data;

fn llama2() -> Option<tokenizers::Tokenizer> {
    shared_data("data/tokenizers/llama2/tokenizer.json").map(|p| load_tokenizer(&p).unwrap())
}

#[test]
fn fastchat_sharegpt_sample_counts() {
    let Some(path) = shared_data("data/sft/fastchat_dummy_conversation.json") else {
        return;
    };
    let (convs, report) = read_conversations(&path, ReadOptions::default()).unwrap();
    assert_eq!(report.records, 500);
    assert_eq!(convs.len(), 500);
    let rounds = |n| convs.iter().filter(|c| c.turns.len() == n).count();
    assert_eq!((rounds(2), rounds(4), rounds(6)), (167, 166, 167));
    assert_eq!(convs[0].id.as_deref(), Some("identity_0"));
    // Unfolding: one instance per reply, 167*1 + 166*2 + 167*3 = 1000.
    let unfolded: usize = convs.iter().map(|c| unfold(c, None).len()).sum();
    assert_eq!(unfolded, 1000);
    // RS unfolds only the first three replies; here that is everything.
    assert_eq!(
        convs
            .iter()
            .map(|c| unfold(c, Some(3)).len())
            .sum::<usize>(),
        1000
    );
    assert_eq!(
        convs
            .iter()
            .map(|c| unfold(c, Some(1)).len())
            .sum::<usize>(),
        500
    );
}

#[test]
fn vicuna_prompt_is_rendered_character_for_character() {
    let Some(path) = shared_data("data/sft/fastchat_dummy_conversation.json") else {
        return;
    };
    let (convs, _) = read_conversations(&path, ReadOptions::default()).unwrap();
    let text = ChatTemplate::VicunaV11.render(&convs[0]).text;
    assert_eq!(
        text,
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives \
helpful, detailed, and polite answers to the user's questions. USER: Who are you? ASSISTANT: I am Vicuna, a \
language model trained by researchers from Large Model Systems Organization (LMSYS).</s>USER: Have a nice day! \
ASSISTANT: You too!</s>"
    );
    // The generation prompt (history ending with a human turn) ends with the assistant cue.
    let prompt = strip_last_reply(&convs[0]).unwrap();
    assert!(
        ChatTemplate::VicunaV11
            .prompt_text(&prompt)
            .ends_with("USER: Have a nice day! ASSISTANT:")
    );
    let llama = ChatTemplate::Llama2Chat.render(&convs[0]).text;
    assert_eq!(
        llama,
        "<s>[INST] Who are you? [/INST] I am Vicuna, a language model trained by researchers from Large Model \
Systems Organization (LMSYS). </s><s>[INST] Have a nice day! [/INST] You too! </s>"
    );
}

#[test]
fn vicuna_ids_and_mask_on_the_llama2_tokenizer() {
    let (Some(tok), Some(path)) = (
        llama2(),
        shared_data("data/sft/fastchat_dummy_conversation.json"),
    ) else {
        return;
    };
    let (convs, _) = read_conversations(&path, ReadOptions::default()).unwrap();
    let t = tokenize(
        ChatTemplate::VicunaV11,
        &convs[0],
        &tok,
        TrainOn::AllAssistant,
    )
    .unwrap();
    assert_eq!(t.len(), 85);
    assert_eq!(t.ids[0], 1, "BOS");
    assert_eq!(
        t.ids.iter().filter(|&&i| i == 2).count(),
        2,
        "one </s> per reply"
    );
    // The trained tokens decode to exactly the two replies with their </s>.
    let trained: Vec<u32> = t
        .ids
        .iter()
        .zip(&t.mask)
        .filter(|(_, m)| **m)
        .map(|(i, _)| *i)
        .collect();
    let text = tok.decode(&trained, false).unwrap();
    assert_eq!(
        text,
        "I am Vicuna, a language model trained by researchers from Large Model Systems Organization (LMSYS).</s> You too!</s>"
    );
    assert_eq!(t.trainable(), 29);
    // Last-reply-only (RS) trains on the final reply alone.
    let last = tokenize(
        ChatTemplate::VicunaV11,
        &convs[0],
        &tok,
        TrainOn::LastAssistant,
    )
    .unwrap();
    let trained: Vec<u32> = last
        .ids
        .iter()
        .zip(&last.mask)
        .filter(|(_, m)| **m)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(tok.decode(&trained, false).unwrap(), "You too!</s>");
    assert_eq!(last.ids, t.ids);
    assert_eq!(t.round_starts.len(), 2);
}

#[test]
fn long_oasst_conversation_is_split_at_round_boundaries() {
    let (Some(tok), Some(path)) = (
        llama2(),
        shared_data("data/sft/axolotl_oasst_conversation.json"),
    ) else {
        return;
    };
    let (convs, report) = read_conversations(&path, ReadOptions::default()).unwrap();
    assert_eq!(report.records, 1);
    let conv = &convs[0];
    assert_eq!(conv.turns.len(), 12);
    assert_eq!(conv.num_replies(), 6);
    let t = tokenize(ChatTemplate::VicunaV11, conv, &tok, TrainOn::AllAssistant).unwrap();
    assert_eq!(t.round_starts.len(), 6);
    let whole = split_into_blocks(&t, 4096).unwrap();
    assert_eq!(
        whole.blocks.len(),
        1,
        "{} tokens fit one 4096 block",
        t.len()
    );
    assert_eq!(whole.blocks[0], t);
    // Small blocks: every block within the limit, every trainable token in exactly one block.
    let max_len = t.len() / 3;
    let split = split_into_blocks(&t, max_len).unwrap();
    assert!(split.blocks.len() >= 3);
    assert!(split.blocks.iter().all(|b| b.len() <= max_len));
    let kept: usize = split.blocks.iter().map(|b| b.trainable()).sum();
    assert_eq!(kept + split.truncated_trainable_tokens, t.trainable());
    // Every block starts with the full prefix (BOS + system prompt).
    let prefix = &t.ids[..t.round_starts[0]];
    assert!(split.blocks.iter().all(|b| b.ids.starts_with(prefix)));
}

#[test]
fn alpaca_demo_is_imported() {
    let Some(path) = shared_data("data/sft/llamafactory_alpaca_en_demo.json") else {
        return;
    };
    let (convs, report) = read_conversations(&path, ReadOptions::default()).unwrap();
    assert_eq!(report.records, 999);
    let with_input = convs
        .iter()
        .filter(|c| c.turns[0].value.contains('\n'))
        .count();
    assert!(with_input >= 412, "{with_input}");
    assert!(convs.iter().all(|c| c.turns.len() == 2));
}

#[test]
fn llamafactory_dpo_pairs_keep_history_and_system() {
    let Some(path) = shared_data("data/preference/llamafactory_dpo_en_demo.json") else {
        return;
    };
    let mut pairs = Vec::new();
    let report =
        for_each_preference_pair(&path, ReadOptions::default(), |p| pairs.push(p)).unwrap();
    assert_eq!(report.records, 300);
    assert_eq!(
        pairs.iter().filter(|p| p.prompt.system.is_some()).count(),
        80
    );
    assert!(pairs.iter().all(|p| p.prompt.turns.len() % 2 == 1));
    assert!(
        pairs
            .iter()
            .all(|p| !p.chosen.is_empty() && p.chosen != p.rejected)
    );
}

#[test]
fn hh_rlhf_transcripts_become_pairs() {
    let Some(path) = shared_data("data/preference/hh-rlhf_harmless-base_test.jsonl.gz") else {
        return;
    };
    let mut pairs = Vec::new();
    let report =
        for_each_preference_pair(&path, ReadOptions::default(), |p| pairs.push(p)).unwrap();
    assert_eq!((report.records, report.skipped), (2312, 0));
    assert_eq!(
        pairs[0].prompt.turns[0].value,
        "what are some pranks with a pen i can do?"
    );
    assert!(
        pairs
            .iter()
            .all(|p| p.prompt.turns.len() % 2 == 1 && p.chosen != p.rejected)
    );
    // In 5 pairs the chosen transcript has two assistant messages in a row at the end
    // (line 1953: "...here's the key:\n\nAssistant:  O.k."); they are merged into one reply,
    // so those pairs still differ only in the last reply.
    let merged = &pairs[1952];
    assert!(
        merged
            .chosen
            .starts_with("Alrighty, I’ll do my best, here’s the key:\n\n"),
        "{}",
        merged.chosen
    );
    assert!(merged.rejected.starts_with("You mean a password, right?"));
}

#[test]
fn fastchat_statistics_table() {
    let (Some(tok), Some(path)) = (
        llama2(),
        shared_data("data/sft/fastchat_dummy_conversation.json"),
    ) else {
        return;
    };
    let mut stats = ConversationStats::default();
    for_each_conversation(&path, ReadOptions::default(), |c| {
        stats.add(&c, &tok).unwrap()
    })
    .unwrap();
    assert_eq!(stats.conversations, 500);
    assert!((stats.turns_per_conversation.mean - 2.0).abs() < 1e-12);
    let table = stats.table();
    assert!(table.contains("| conversations | 500 |"), "{table}");
}
