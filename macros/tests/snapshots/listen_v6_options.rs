// Input:
// #[wsk_endpoint(
//     kind = "listen",
//     addr = "[fe80::1%3]:443",
//     max_connections = 8,
//     exclusive,
//     dual_stack
// )]
// #[derive(Default)]
// pub(crate) struct Tls(u32);
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

#[derive(Default)]
pub(crate) struct Tls(u32);
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "Tls",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([
            23u8, 0u8, 1u8, 187u8, 0u8, 0u8, 0u8, 0u8, 254u8, 128u8, 0u8, 0u8, 0u8, 0u8,
            0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 1u8, 3u8, 0u8, 0u8, 0u8,
        ]),
        remote: ::core::option::Option::None,
        max_connections: 8u32,
        exclusive: true,
        v6only: ::core::option::Option::Some(false),
        events: ::wsk::__private::Events::NONE,
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for Tls {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::Listen,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
