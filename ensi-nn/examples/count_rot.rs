fn main() {
    let mut cfg = ensi_bitnet::embedded_config();
    cfg.hidden_size = 1536;
    cfg.intermediate_size = 4096;
    cfg.num_attention_heads = 16;
    cfg.num_key_value_heads = 16;
    cfg.head_dim = 96;
    for n in [8usize] {
        let r = ensi_nn::block_layer::block_rotations(&cfg, n, 32768, false).unwrap();
        println!("large n={n}: {} rotations", r.len());
    }
    cfg.hidden_size = 2560;
    cfg.intermediate_size = 6912;
    cfg.num_attention_heads = 20;
    cfg.num_key_value_heads = 5;
    cfg.head_dim = 128;
    let r = ensi_nn::block_layer::block_rotations(&cfg, 8, 32768, false);
    println!("2b4t: {:?}", r.map(|r| r.len()));
    let p = ensi_ckks::Parameters::new(ensi_ckks::ParametersLiteral::n16_bootstrappable()).unwrap();
    println!("q {} p {} dnum {}", p.q().len(), p.p().len(), p.dnum());
}
