//! Property tests of the transforms on random conversations, tokenized with the repo's
//! byte-level BPE fixture tokenizer.

use proptest::prelude::*;
use xwin_data::*;

fn tokenizer() -> tokenizers::Tokenizer {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-llama/tokenizer.json");
    load_tokenizer(&p).unwrap()
}

fn conversation() -> impl Strategy<Value = Conversation> {
    let text = "[a-z]{1,8}( [a-z]{1,8}){0,12}";
    (
        prop::collection::vec((text, text), 1..6),
        prop::option::of(text),
    )
        .prop_map(|(rounds, system)| Conversation {
            id: None,
            system,
            turns: rounds
                .into_iter()
                .flat_map(|(q, a)| [Turn::human(q), Turn::gpt(a)])
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mask_covers_exactly_the_replies(conv in conversation(), llama in any::<bool>()) {
        let template = if llama { ChatTemplate::Llama2Chat } else { ChatTemplate::VicunaV11 };
        let tok = tokenizer();
        let t = tokenize(template, &conv, &tok, TrainOn::AllAssistant).unwrap();
        let rendered = template.render(&conv);
        let enc = tok.encode(rendered.text.as_str(), false).unwrap();
        prop_assert_eq!(&t.ids, &enc.get_ids().to_vec());
        // Masked tokens reproduce each reply span exactly, and nothing else.
        let mut masked = String::new();
        for (i, (s, e)) in enc.get_offsets().iter().enumerate() {
            if t.mask[i] { masked.push_str(&rendered.text[*s..*e]); }
        }
        let want: String = rendered.replies.iter().map(|r| rendered.text[r.clone()].trim_start()).collect();
        prop_assert_eq!(masked.replace(' ', ""), want.replace(' ', ""));
        let last = tokenize(template, &conv, &tok, TrainOn::LastAssistant).unwrap();
        let last_reply = rendered.replies.last().unwrap();
        for (i, (s, _)) in enc.get_offsets().iter().enumerate() {
            prop_assert_eq!(last.mask[i], t.mask[i] && *s >= last_reply.start);
        }
    }

    #[test]
    fn blocks_respect_max_len_and_keep_every_trainable_token_once(conv in conversation(), slack in 0usize..60) {
        let tok = tokenizer();
        let t = tokenize(ChatTemplate::VicunaV11, &conv, &tok, TrainOn::AllAssistant).unwrap();
        let max_len = t.round_starts[0] + 1 + slack;
        let b = split_into_blocks(&t, max_len).unwrap();
        prop_assert!(b.blocks.iter().all(|x| x.len() <= max_len));
        let kept: usize = b.blocks.iter().map(|x| x.trainable()).sum();
        prop_assert_eq!(kept + b.truncated_trainable_tokens, t.trainable());
        // Without truncation, the rounds of the blocks are exactly the rounds of the input.
        if b.truncated_rounds == 0 {
            let rounds: Vec<Vec<u32>> = b.blocks.iter().flat_map(|x| (0..x.round_starts.len()).map(|i| x.ids[x.round(i)].to_vec())).collect();
            let want: Vec<Vec<u32>> = (0..t.round_starts.len()).map(|i| t.ids[t.round(i)].to_vec()).collect();
            prop_assert_eq!(rounds, want);
        }
    }

    #[test]
    fn unfolding_yields_one_instance_per_reply(conv in conversation(), k in 1usize..5) {
        let all = unfold(&conv, None);
        prop_assert_eq!(all.len(), conv.num_replies());
        for (i, inst) in all.iter().enumerate() {
            prop_assert_eq!(inst.num_replies(), i + 1);
            prop_assert_eq!(&inst.turns[..], &conv.turns[..2 * i + 2]);
        }
        prop_assert_eq!(unfold(&conv, Some(k)).len(), conv.num_replies().min(k));
    }

    #[test]
    fn write_then_read_round_trips(convs in prop::collection::vec(conversation(), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let mut w = JsonlWriter::create(&path).unwrap();
        for c in &convs { w.write(c).unwrap(); }
        let (back, report) = read_conversations(&path, ReadOptions::default()).unwrap();
        prop_assert_eq!(report.records, convs.len());
        prop_assert_eq!(back, convs);
    }

    #[test]
    fn padding_and_buckets_lose_nothing(lens in prop::collection::vec(1usize..50, 1..40), batch in 1usize..8) {
        let seqs: Vec<TokenizedConversation> = lens.iter().map(|&n| TokenizedConversation { ids: vec![7; n], mask: vec![true; n], round_starts: vec![0] }).collect();
        let buckets = length_buckets(&lens, batch, 64, 1);
        let mut seen: Vec<usize> = buckets.iter().flatten().copied().collect();
        seen.sort();
        prop_assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
        for b in &buckets {
            prop_assert!(b.len() <= batch);
            let refs: Vec<&TokenizedConversation> = b.iter().map(|&i| &seqs[i]).collect();
            let padded = pad_batch(&refs, 0, PadSide::Right);
            prop_assert!(b.len() == 1 || padded.len() * padded.seq_len() <= 64);
            let real: usize = padded.attention.iter().flatten().filter(|a| **a).count();
            prop_assert_eq!(real, b.iter().map(|&i| lens[i]).sum::<usize>());
        }
    }

    #[test]
    fn padding_to_a_multiple_keeps_every_row_and_rounds_the_width(
        lens in prop::collection::vec(1usize..90, 1..8),
        multiple in 1usize..40,
        left: bool,
    ) {
        let seqs: Vec<TokenizedConversation> = lens.iter().enumerate().map(|(r, &n)| TokenizedConversation {
            ids: (0..n).map(|t| (r * 100 + t) as u32 + 3).collect(),
            mask: (0..n).map(|t| t % 3 != 0).collect(),
            round_starts: vec![0],
        }).collect();
        let refs: Vec<&TokenizedConversation> = seqs.iter().collect();
        let side = if left { PadSide::Left } else { PadSide::Right };
        let plain = pad_batch(&refs, 0, side);
        let rounded = pad_batch_to(&refs, Padding { id: 0, multiple: Some(multiple) }, side);
        let longest = *lens.iter().max().unwrap();
        prop_assert_eq!(rounded.seq_len() % multiple, 0);
        prop_assert!(rounded.seq_len() >= longest && rounded.seq_len() < longest + multiple);
        prop_assert_eq!(padded_width(longest, Some(multiple)), rounded.seq_len());
        for (r, s) in seqs.iter().enumerate() {
            // The real tokens, their mask and attention, where the side puts them; padding
            // is never attended nor trained.
            let at = if left { rounded.seq_len() - s.ids.len() } else { 0 };
            prop_assert_eq!(&rounded.ids[r][at..at + s.ids.len()], &s.ids[..]);
            prop_assert_eq!(&rounded.loss_mask[r][at..at + s.ids.len()], &s.mask[..]);
            prop_assert_eq!(rounded.attention[r].iter().filter(|a| **a).count(), s.ids.len());
            prop_assert_eq!(rounded.loss_mask[r].iter().filter(|m| **m).count(), plain.loss_mask[r].iter().filter(|m| **m).count());
        }
        let (ids, attention) = pad_rows_to(&seqs.iter().map(|s| &s.ids[..]).collect::<Vec<_>>(), Padding { id: 0, multiple: Some(multiple) });
        prop_assert_eq!(ids[0].len(), rounded.seq_len());
        prop_assert_eq!(attention.iter().flatten().filter(|a| **a).count(), lens.iter().sum::<usize>());
    }

    #[test]
    fn validation_split_is_deterministic_and_near_the_fraction(seed: u64) {
        let convs: Vec<Conversation> = (0..2000).map(|i| Conversation { id: Some(format!("c{i}")), system: None, turns: vec![Turn::human("q")] }).collect();
        let val: Vec<bool> = convs.iter().map(|c| is_validation(c, 0.1, seed)).collect();
        prop_assert_eq!(&val, &convs.iter().map(|c| is_validation(c, 0.1, seed)).collect::<Vec<_>>());
        let n = val.iter().filter(|v| **v).count();
        prop_assert!((120..=280).contains(&n), "{} of 2000", n);
    }
}
